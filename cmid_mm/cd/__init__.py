"""(filled in by the downstream work)"""
