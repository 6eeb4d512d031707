"""Routes in the shapes of other servers, so clients written for them work unmodified."""
