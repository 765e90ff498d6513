"""Tests never reach the network: the Hugging Face Hub is off for the whole session (recorded fixtures only)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GPUPLAN_OFFLINE"] = "1"
