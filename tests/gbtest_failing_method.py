"""A third-party method (named ``gbtest_failing_method:Exploding``) whose prediction raises: a run that fails on a worker."""

from grainbench.baselines.classical import Classical


class Exploding(Classical):
    """The classical floor, except that predicting raises (it builds and validates like any method)."""

    name = "exploding"

    def predict(self, *args, **kwargs):
        raise RuntimeError("deliberate failure while predicting\nsecond line that the report leaves out")
