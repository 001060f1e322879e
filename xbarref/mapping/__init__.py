"""xbarref.mapping"""
