# desktop-notifier (desktop_agent/notify.py) reads its default icon with
# importlib.resources.files("desktop_notifier.resources"): a package named only in a string, so
# PyInstaller's analysis misses it, and without it every notification of the packaged agent failed
# ("No module named 'desktop_notifier.resources'"; tests/desktop_agent/test_tray_sni.py, packaged).
from PyInstaller.utils.hooks import collect_data_files

hiddenimports = ["desktop_notifier.resources"]
datas = collect_data_files("desktop_notifier")
