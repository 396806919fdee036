"""Live and historical call-centre statistics and the metric dictionary (pure core and service)."""
