"""qbench's built-in plugins. Each module registers through the ``qbench`` entry-point group, exactly as a
third-party package does, and uses only qbench's public API."""
