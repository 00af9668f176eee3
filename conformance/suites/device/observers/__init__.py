"""What the ``device`` suite observes, one module per aspect; each defines a mixin of the suite's world."""
