"""The studio's own T3 token loop: batching, the remembered conditioning prefix, alignment steering, acceleration."""
