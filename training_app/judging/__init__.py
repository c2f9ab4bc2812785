"""Blind A/B judgement: two models' answers to one prompt, in random order, a person's vote, and the tally."""
