"""SAME (47 CFR 11.31) header model, encoder and streaming decoder."""
