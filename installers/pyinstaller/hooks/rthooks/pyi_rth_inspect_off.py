# Takes the place of PyInstaller's runtime hook for `inspect` (pyi_rth_inspect), on purpose empty.
#
# That hook makes inspect.getsourcefile() find source files in a frozen program, and to do so it
# imports zipfile and lists base_library.zip at every start: 0.3 MiB of RSS in every agent
# (bench/agent_footprint.py --packaged). The agent never asks for source code; httpx and
# dataclasses import `inspect` for signatures and type checks only, which work without the hook.
