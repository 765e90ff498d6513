"""Cache recipes of vLLM 0.33 families whose block-outermost KV caches fit none of gpuplan's Attention kinds.

Each module registers one recipe (kv_packed.register_recipe) named by the `Attention.recipe` its adapter sets;
importing this package registers them all.
"""

from . import deepseek_v41, glm5_next, minimax_m3, step5  # noqa: F401
