import asyncio

from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def user(request, uid):
    return JsonResponse({"id": uid, "q": request.GET.get("q")})


async def async_view(request, name):
    await asyncio.sleep(0)
    return HttpResponse(f"hello {name}")


def boom(request):
    return 1 / 0


async def async_boom(request):
    await asyncio.sleep(0)
    raise RuntimeError("async failure")


def stream(request):
    return StreamingHttpResponse(f"part {i}\n" for i in range(3))


@csrf_exempt
def login(request):
    password = request.POST["password"]
    raise ValueError("login failed" + password[:0])


def missing(request):
    raise Http404("no such thing")


def whoami(request):
    """Evaluates request.user (as most views do), then fails."""
    raise RuntimeError(f"whoami {request.user.is_authenticated}")


def quiet(request):
    """Never looks at request.user."""
    raise RuntimeError("quiet")


@csrf_exempt
@require_POST
def subscribe(request):
    """POST only: a GET is answered 405 by this view, its URL pattern matched."""
    return HttpResponse("subscribed")
