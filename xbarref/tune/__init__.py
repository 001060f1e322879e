"""xbarref.tune"""
