"""Spiking networks from trained ANNs on crossbars: conversion, hybrid STDB fine-tuning, surrogate BPTT."""

from .conversion import (
    ConversionAlgorithm,
    ConversionParams,
    HybridAlgorithm,
    HybridParams,
    SurrogateAlgorithm,
    SurrogateParams,
)
from .network import SpikingNetwork, check_convertible
from .surrogate import STDB, LinearSurrogate, make_surrogate
from .training import bptt_forward, train_bptt

__all__ = [
    "ConversionAlgorithm",
    "ConversionParams",
    "HybridAlgorithm",
    "HybridParams",
    "SurrogateAlgorithm",
    "SurrogateParams",
    "SpikingNetwork",
    "check_convertible",
    "STDB",
    "LinearSurrogate",
    "make_surrogate",
    "bptt_forward",
    "train_bptt",
]
