"""The control socket (issue 14): a running host answers its console, the CLI and monitoring
on a Unix domain socket in its working folder; one host per folder."""
