"""Text: tokenizer training and prompt templates."""
