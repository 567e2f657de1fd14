"""Baseline methods. Each module registers through the ``grainbench.methods`` entry points in
``pyproject.toml``, exactly as a third-party method would; nothing in grainbench imports them.

======================  =========  ========  ===========================================
name                    context    params    module
======================  =========  ========  ===========================================
``wpunet``              2d+prev    31.05M    :mod:`baselines.wpunet` (fusion layers 1-4)
``wpunet_layer1``       2d+prev    31.04M    :mod:`baselines.wpunet` (fusion layer 1)
``unet``                2d         31.04M    :mod:`baselines.unet`
``unet_resnet34``       2d         24.43M    :mod:`baselines.smp_unet` (needs smp)
``unet_efficientnet_b0``2d          5.83M    :mod:`baselines.smp_unet` (needs smp + timm)
``classical``           2d         0         :mod:`baselines.classical`
======================  =========  ========  ===========================================
"""
