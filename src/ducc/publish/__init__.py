"""Publishers: how products get into a repository (cvmfs_server transactions or a directory)."""
