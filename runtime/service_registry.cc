#include "runtime/service_registry.h"


#include <cstdio>

#include "api.pb.h"
#include "runtime/base/random.h"
#include "runtime/json_print.h"
#include "triggers/cloudevents.h"

namespace wisp::runtime {
namespace {

constexpr const char* kVerbs[] = {"PING", "INFO", "STATS"};

template <typename Message>
void FillIdentity(const ServiceDescription& d, const std::string& id, const char* type,
                  Message* m) {
  m->set_name(d.name);
  m->set_id(id);
  m->set_version(d.version);
  m->mutable_metadata()->insert(d.metadata.begin(), d.metadata.end());
  m->set_type(type);
}

}  // namespace

std::string NewServiceId() { return RandomAlphanumeric(22); }

ServiceRegistry::ServiceRegistry(triggers::Broker* broker, EventTriggers* triggers)
    : broker_(broker), triggers_(triggers) {}

ServiceRegistry::~ServiceRegistry() { UnregisterAll(); }

Status ServiceRegistry::Register(const ServiceDescription& description) {
  Unregister(description.name);
  auto service = std::make_unique<Service>();
  service->description = description;
  service->id = NewServiceId();
  service->started = triggers::NowRfc3339Millis();
  Service* raw = service.get();
  for (int v = 0; v < 3; ++v) {
    const std::string base = std::string("$SRV.") + kVerbs[v];
    for (const std::string& subject :
         {base, base + "." + description.name, base + "." + description.name + "." + raw->id}) {
      StatusOr<triggers::SubscriptionId> id =
          broker_->Subscribe(subject, "", [this, raw, v](triggers::BrokerMessage request) {
            Answer(*raw, static_cast<Verb>(v), request);
          });
      if (!id.ok()) {
        for (triggers::SubscriptionId sub : raw->subscriptions) broker_->Unsubscribe(sub);
        return id.status().WithContext("register service " + description.name);
      }
      raw->subscriptions.push_back(*id);
    }
  }
  triggers_->ResetStats(description.name);
  services_[description.name] = std::move(service);
  return Status::OK();
}

void ServiceRegistry::Unregister(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return;
  for (triggers::SubscriptionId sub : it->second->subscriptions) broker_->Unsubscribe(sub);
  services_.erase(it);
}

void ServiceRegistry::UnregisterAll() {
  for (auto& [name, service] : services_) {
    for (triggers::SubscriptionId sub : service->subscriptions) broker_->Unsubscribe(sub);
  }
  services_.clear();
}

std::string ServiceRegistry::Render(const Service& service, Verb verb) const {
  const ServiceDescription& d = service.description;
  const std::vector<Endpoint>* endpoints = triggers_->Endpoints(d.name);
  std::string out;
  switch (verb) {
    case Verb::kPing: {
      api::ServicePing ping;
      FillIdentity(d, service.id, "io.nats.micro.v1.ping_response", &ping);
      out = ToJson(ping, false);
      break;
    }
    case Verb::kInfo: {
      api::ServiceInfo info;
      FillIdentity(d, service.id, "io.nats.micro.v1.info_response", &info);
      info.set_description(d.description);
      if (endpoints != nullptr) {
        for (const Endpoint& e : *endpoints) {
          api::ServiceEndpointInfo* ei = info.add_endpoints();
          ei->set_name(e.name);
          ei->set_subject(e.subject);
          ei->set_queue_group(e.queue_group);
        }
      }
      out = ToJson(info, false);
      break;
    }
    case Verb::kStats: {
      api::ServiceStats stats;
      FillIdentity(d, service.id, "io.nats.micro.v1.stats_response", &stats);
      stats.set_started(service.started);
      if (endpoints != nullptr) {
        for (const Endpoint& e : *endpoints) {
          api::ServiceEndpointStats* es = stats.add_endpoints();
          es->set_name(e.name);
          es->set_subject(e.subject);
          es->set_queue_group(e.queue_group);
          es->set_num_requests(static_cast<double>(e.stats.requests));
          es->set_num_errors(static_cast<double>(e.stats.errors));
          es->set_last_error(e.stats.last_error);
          es->set_processing_time(static_cast<double>(e.stats.processing_ns));
          es->set_average_processing_time(
              e.stats.requests == 0 ? 0.0
                                    : static_cast<double>(e.stats.processing_ns / e.stats.requests));
        }
      }
      out = ToJson(stats, false);
      break;
    }
  }
  return out;
}

void ServiceRegistry::Answer(const Service& service, Verb verb,
                             const triggers::BrokerMessage& request) {
  if (request.reply.empty()) return;  // nobody to answer
  triggers::BrokerMessage reply;
  reply.subject = request.reply;
  reply.data = Render(service, verb);
  Status s = broker_->Publish(std::move(reply));
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: cannot answer $SRV.%s for %s: %s\n", kVerbs[static_cast<int>(verb)],
                 service.description.name.c_str(), s.ToString().c_str());
  }
}

}  // namespace wisp::runtime
