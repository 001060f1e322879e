"""xbarref.nn"""
