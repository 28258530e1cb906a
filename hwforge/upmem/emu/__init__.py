"""C headers and sources of hwforge's host-side UPMEM SDK emulation (package data; see hwforge.upmem.emulator)."""
