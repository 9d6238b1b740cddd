"""Classical inpainting methods, for comparison and as fast alternatives.

Each module exposes ``fill_<name>(video, mask, config, ctx)`` with the
signature of :mod:`infusion.methods`.
"""
