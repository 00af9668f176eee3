"""A vendor's ``device`` adapter for the conformance suite: see :mod:`examples.vendor_device.acme_vf`."""
