"""Check functions for the chapters' exercises (one module per chapter), in the way ARENA does it:
the reader writes a function, calls ``check_xxx(their_fn)``, and it is compared with the
solution on fresh random inputs."""
