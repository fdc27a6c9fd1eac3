"""Built-in samplers; importing this package registers them by name."""

from nqba.engine.samplers import annealing, exact, tabu, tempering

__all__ = ["annealing", "exact", "tabu", "tempering"]
