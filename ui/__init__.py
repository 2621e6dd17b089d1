"""PySide6 desktop app (tray + main window) over avatarcam.Session."""
