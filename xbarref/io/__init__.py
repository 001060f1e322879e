"""xbarref.io"""
