"""Scoring transcripts: Whisper's text normaliser, WER/CER per language, reports."""
