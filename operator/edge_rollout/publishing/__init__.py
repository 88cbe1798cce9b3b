"""The publisher pipeline: inspect a model, build variants, measure, pack; a typed request in,
a release out, progress through a callback. No argparse, no console, no cluster.
"""
