"""Spiking neuron models, one file each: equation and source in each docstring; state tensors shaped
``[R, B, N]`` (replicas, batch, neurons); every random draw from a ``torch.Generator``."""
