"""Small tools every layer uses: git plumbing, spooling, timing, dates, paths, progress, processes.

Knows nothing of archives, git-annex's semantics, the index or the commands. Imports nothing of
neuromirror outside ``util`` (and never will: everything else may import it).
"""
