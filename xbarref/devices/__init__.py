"""xbarref.devices"""
