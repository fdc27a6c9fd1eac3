"""NQBA: business decisions as optimization models, solved by a quantum-ready engine."""

__version__ = "0.1.0"
