"""Clearance progress: layers in, overlay, figures out."""
