"""Built-in samplers; importing this package registers them by name."""

from nqba.engine.samplers import annealing, constrained, exact, tabu, tempering

__all__ = ["annealing", "constrained", "exact", "tabu", "tempering"]
