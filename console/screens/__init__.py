"""The console's screens: dashboard, certificates, devices, help, and the modal dialogs."""
