"""What the processes of one fleet must agree on, checked when each one starts."""
