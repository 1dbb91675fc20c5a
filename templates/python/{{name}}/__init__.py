"""{{description}}"""

__version__ = "{{version}}"
