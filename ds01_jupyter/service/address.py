"""Where ds01d listens, and how a client names another socket or none.

Here, apart from the admin's configuration (:mod:`.config`), so that a client
finding its socket imports nothing else (issue 19: the CLI's start-up time).
"""

#: The socket ds01d serves and clients look for; a client's DS01_SOCKET names another, or "none" for Docker directly.
DEFAULT_SOCKET = "/run/ds01/ds01.sock"
#: The client's variable choosing the socket ("none": talk to Docker directly, for a user who may).
SOCKET_VARIABLE = "DS01_SOCKET"
#: What every front end says of its choice of ds01d (the CLI's DS01_SOCKET, the server extension's ``socket``).
SOCKET_HELP = (
    f"ds01d's socket, through which ds01 acts for you without Docker access (a shared server). Empty: "
    f"${SOCKET_VARIABLE}, else {DEFAULT_SOCKET} when that socket exists, else the Docker engine directly. "
    "'none' (or 'docker') always uses the engine directly, for a user who may use Docker. A socket named here "
    "is used, and an error says so when ds01d does not answer there. Through ds01d, its admin's file decides "
    "where projects live, the limits, GPUs and images: this server's own settings of those are not used."
)
