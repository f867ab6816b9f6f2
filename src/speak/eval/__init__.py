"""Evaluation: BPC, shortening factor, energy accounting."""
