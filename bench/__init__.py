"""Side-by-side benchmark of upstream Chatterbox and the studio's engine on one checkpoint."""
