"""JupyterHub integration: each user's projects are named servers.

``DS01Spawner`` (entry point ``jupyterhub.spawners: ds01``) runs a project's
single-user server as the main process of that project's GPU container, made
by the same core as the command line, so one allocator hands out GPUs on
every path and the persistence guard retires every container.
"""
