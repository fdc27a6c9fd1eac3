"""Finance unit: portfolio optimization, risk assessment and trading operations (pure domain)."""
