"""Benchmarks of the kit, run by `task bench-*`: they import the kit; the kit never imports them."""
