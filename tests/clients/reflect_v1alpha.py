"""Lists a gRPC server's services through grpc.reflection.v1alpha, as
grpcio-reflection, older grpcurl and Postman do. Prints one name a line.

    python3 tests/clients/reflect_v1alpha.py 127.0.0.1:50051
"""
import sys

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def main() -> None:
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for reply in stub.ServerReflectionInfo(iter([request]), timeout=30):
            for service in reply.list_services_response.service:
                print(service.name)


if __name__ == "__main__":
    main()
