"""What the command-line tools run: training and testing launch, the demo
chain, the evidence study and the benchmarks.

Each tool in ``tools/`` parses its arguments and calls one module here.
Nothing is imported eagerly (``import mmmoma`` stays light): import the
module you need, e.g. ``from mmmoma.apis import demo``.
"""
