#!/usr/bin/env python3
"""Writes the dense task vector τ = θ_ft − θ_base of a full fine-tune (float tensors only) as
safetensors, for the container benchmark on real expert deltas.
Usage: make_task_vector.py BASE_DIR FINETUNED_DIR OUT.safetensors"""
import sys
from safetensors.torch import load_file, save_file
base = load_file(sys.argv[1] + "/model.safetensors")
ft = load_file(sys.argv[2] + "/model.safetensors")
save_file({k: (ft[k] - base[k]).contiguous() for k in sorted(ft) if k in base and base[k].is_floating_point()}, sys.argv[3])
