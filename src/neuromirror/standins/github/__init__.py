"""A GitHub stand-in on loopback: the REST calls ``publish --to github:ORG`` makes and the repositories over git's
smart HTTP (:mod:`.server`, the class :class:`~neuromirror.standins.github.server.GitHubStandIn`;
:mod:`.smart_http`, ``git http-backend`` behind it).  PyGithub pointed at its ``api_url`` works too."""
