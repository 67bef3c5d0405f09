"""The application room: the `landscape` command, option parsing, `reproduce` and the paper's
constants. The only part of the package that imports both `landscape.recorders` and
`landscape.analysis`; nothing in the core imports it.
"""
