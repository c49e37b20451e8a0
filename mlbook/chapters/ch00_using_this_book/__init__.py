"""Chapter 0 — using this book: the exercise checks (the chapter itself uses ``mlbook.interp``)."""
