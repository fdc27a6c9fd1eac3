"""The package's public names resolve, and importing the errors stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nqba.finance


@pytest.mark.parametrize("name", nqba.finance.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(nqba.finance, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = nqba.finance.no_such_thing


def test_importing_the_errors_does_not_load_cvxpy() -> None:
    code = "import sys, nqba.finance.errors; print('cvxpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
