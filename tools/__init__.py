"""Project tooling (not part of the gradcheck library): mutation testing of the checker."""
