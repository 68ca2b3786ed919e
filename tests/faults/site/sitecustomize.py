"""Loaded by Python at start in the processes K2's disk-full tests launch (their PYTHONPATH puts this
folder first). chDB loads its engine with RTLD_DEEPBIND, which binds it to the C library directly and
past LD_PRELOAD; loaded here first without it, the engine's write() and statvfs() calls go through
the preloaded fault library (enospc.c) like everyone else's. Nothing else changes."""

import ctypes
import importlib.util
import os

_spec = importlib.util.find_spec("chdb")
for _folder in (_spec.submodule_search_locations or []) if _spec else []:
    _engine = os.path.join(_folder, "_chdb.abi3.so")
    if os.path.exists(_engine):
        ctypes.CDLL(_engine, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        break
