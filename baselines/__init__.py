"""Baseline methods, installed as ``grainbench.baselines`` (this folder; see pyproject's ``package-dir``).

Each module registers through the ``grainbench.methods`` entry points in
``pyproject.toml``, exactly as a third-party method would; nothing in grainbench imports them.

``baselines/README.md`` lists every baseline with its context, parameter count
(ours against its paper's), where the architecture comes from and each
deviation from the paper; ``grainbench models`` prints the live table.
"""
