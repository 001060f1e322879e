"""xbarref.validate"""
